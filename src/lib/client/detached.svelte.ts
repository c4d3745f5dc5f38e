/**
 * Creates a long-lived reactive object (a class with `$state` and `$derived` fields) outside whatever is running.
 * Created inside a component's effect, its deriveds would belong to that effect and stop following their state
 * once the component is gone: a room first opened from its page, then left, kept showing what it held when left.
 * Returns the object and the function that lets its reactivity go (call it when the object is closed).
 */
export function detached<T>(create: () => T): [T, () => void] {
	let value: T | undefined;
	const dispose = $effect.root(() => {
		value = create();
	});
	return [value as T, dispose];
}
